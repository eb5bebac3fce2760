"""Security tests, one module per surface: each holds the attacks of issue 26 (the serving
surfaces as a boundary), written the way an attacker would send them."""
