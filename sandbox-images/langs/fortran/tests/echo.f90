program echo
  implicit none
  character(len=4096) :: buf
  integer :: ios, n
  do
    read(*, '(a)', advance='no', iostat=ios, size=n) buf
    if (is_iostat_end(ios)) exit
    write(*, '(a)', advance='no') buf(1:n)
    if (is_iostat_eor(ios)) write(*, '(a)') ''
  end do
end program echo
