def x = {
println "unclosed"
