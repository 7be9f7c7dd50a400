program Broken;
var x: integer;
begin
  x := 'nope';
end.
