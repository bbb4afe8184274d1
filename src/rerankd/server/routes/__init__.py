"""One module per family of routes; each handler adapts its dialects at the edge."""
