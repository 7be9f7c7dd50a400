main = putStrLn (1 + "nope")
