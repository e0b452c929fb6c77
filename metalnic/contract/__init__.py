"""Contracts between metalnic's processes: leaf modules (pydantic and the standard library).

Imported by the server and by the programs that talk to it over HTTP (the
smart NIC agent), so neither side imports the other's code.
"""
