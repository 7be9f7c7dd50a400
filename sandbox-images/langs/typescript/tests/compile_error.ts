const x: number = "nope";
console.log(x);
