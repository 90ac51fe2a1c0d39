"""The path of an event: validate and accept (intake), drain into profiles, commit, render."""
