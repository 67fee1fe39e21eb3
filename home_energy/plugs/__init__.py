"""Smart plugs that act on the price: rules read from PLUGS_FILE, plug drivers, the controller.

This package's `__init__` imports nothing, so the web can use its read-only parts (`status`,
`api`) without loading a driver, the store or the network door.
"""
