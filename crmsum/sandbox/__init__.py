"""Offline stand-ins for the outside world: sample data and HTTP emulators on loopback."""
