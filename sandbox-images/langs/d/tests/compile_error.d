void main() { int x = "nope"; }
