"""PPP protocols, each a sans-IO handler; ``table.py`` lists them."""
