// Temporary placeholder so the package resolves while EdgeCrypto is being written.
