"""`python -m aerec key=value ...`: the `aerec` command (aerec.command)."""

from aerec.command import main

if __name__ == "__main__":
    main()
