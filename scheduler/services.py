"""The app's one write path: state changes as named functions in transactions."""
