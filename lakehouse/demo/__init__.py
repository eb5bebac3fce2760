"""Sample raw data for both seeds (vehicle GPS, game analytics), written into a landing store."""
