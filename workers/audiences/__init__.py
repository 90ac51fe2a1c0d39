"""Audiences: definitions, the compiled registry, sizes, deletion, and explaining a user's answers."""
