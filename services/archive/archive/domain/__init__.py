"""archive domain: pure models and rules, standard library only."""
