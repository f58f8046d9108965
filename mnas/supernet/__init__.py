"""Weight sharing: train one supernet over the MnasNet space, then score children with inherited
weights (`evaluator: supernet`) instead of training each from scratch."""
