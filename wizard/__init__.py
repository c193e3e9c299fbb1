"""The seven-step migration wizard in the browser (Welcome to Result), on the current system."""
