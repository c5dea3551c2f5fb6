"""What every trainer shares: seeds (``seeds``)."""
