"""Network building blocks shared by every stage (``gauda.nn.blocks``)."""
