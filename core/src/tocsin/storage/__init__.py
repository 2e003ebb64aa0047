"""Storage: the protocol every backend implements, and the query helpers backends share."""
