"""HTTP surface: thin routers over the domain modules."""
