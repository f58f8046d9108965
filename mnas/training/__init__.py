"""Child training: the trainer, optimisers and schedules, data sets."""
