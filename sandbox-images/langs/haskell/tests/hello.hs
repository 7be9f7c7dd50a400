main = putStrLn "hello, world"
