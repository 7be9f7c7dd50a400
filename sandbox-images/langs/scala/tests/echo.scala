object Main {
  def main(args: Array[String]): Unit =
    for (line <- scala.io.Source.stdin.getLines()) println(line)
}
