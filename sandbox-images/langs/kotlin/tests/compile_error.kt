fun main() { val x: Int = "nope" }
