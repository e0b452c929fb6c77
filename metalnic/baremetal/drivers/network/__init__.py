"""Network interfaces: noop, flat, fake (tests) and smartnic."""
