"""The lowest floor: validation helpers, the tensor interface (types), the activation store, token helpers
and the one fingerprint helper. Imports nothing else of the package."""
