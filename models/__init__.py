"""The firedamp model: scenario simulator, training, export, evaluation; features.py and runtime.py need only numpy and onnxruntime."""
