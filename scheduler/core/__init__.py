"""Pure scheduling policy: imports no Django, opens no connection, reads no clock."""
