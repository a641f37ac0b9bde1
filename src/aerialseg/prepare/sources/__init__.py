"""Where scenes come from: the synthetic generator, the ISPRS Potsdam release (archives, mirrors)."""
