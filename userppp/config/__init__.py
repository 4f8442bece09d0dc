"""Configuration: option tables, pppd options files, secrets files."""
