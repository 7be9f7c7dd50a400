using System;
using System.Linq;
public class Program {
    public static void Main() {
        string line;
        while ((line = Console.ReadLine()) != null) Console.WriteLine(new string(line.ToArray()));
    }
}
