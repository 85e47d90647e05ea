"""Everything from bytes on disk to index arrays: sources, download, parse, prepare, split."""
