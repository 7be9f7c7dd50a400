program broken
  integer :: x
  x = 'nope'
end program broken
