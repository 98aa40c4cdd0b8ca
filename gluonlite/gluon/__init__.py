"""mx.gluon: parameters, blocks, losses and the Trainer."""
