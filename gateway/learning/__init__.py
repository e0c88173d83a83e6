"""Learning from recorded outcomes: retraining with a publish gate, and online bandits."""
