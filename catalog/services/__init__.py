"""Plans, add-ons and their rate cards: the write side of the product catalog."""
