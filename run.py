"""aerec entry point: `python run.py [key=value ...]`, or `python run.py -m ...` to sweep.

The same command as the installed `aerec` and `python -m aerec` (aerec.command).
"""

from aerec.command import main

if __name__ == "__main__":
    main()
