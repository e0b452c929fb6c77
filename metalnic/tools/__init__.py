"""Developer tools that read the code and write documentation from it."""
