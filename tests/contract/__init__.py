"""Runware's answers as data: fixtures with their sources, shared by the client, webhook and emulator tests."""
