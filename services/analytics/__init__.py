"""Analytics: usage rollups per assistant and period, and the series read from them."""
