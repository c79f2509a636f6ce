"""intake domain: pure models and rules (numbers, types, arrival numbering, files), standard library only."""
