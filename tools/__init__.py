"""Developer tools (the modem emulator, the pppd VM harness)."""
