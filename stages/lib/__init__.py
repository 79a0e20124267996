"""Library behind the stages: every function here is what the tests call directly."""
