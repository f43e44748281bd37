"""The recurrent residual-GRU image codec: model, data, training, evaluation and SavedModel export."""
