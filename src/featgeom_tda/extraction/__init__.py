"""Feature activations of N sources on the same token rows, written to activation stores."""
