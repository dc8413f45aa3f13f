"""What the tests share and are not tests themselves: model and projector writers, server starters, the isolated runner."""
