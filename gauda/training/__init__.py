"""What every trainer shares: seeds (``seeds``), the run folder's guard, the train state and its checkpoints
(``state``)."""
