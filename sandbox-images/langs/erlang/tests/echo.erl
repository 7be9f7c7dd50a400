main(_) ->
    ok = io:setopts(standard_io, [binary]),
    copy().
copy() ->
    case io:get_chars(standard_io, '', 4096) of
        eof -> ok;
        Data -> io:put_chars(standard_io, Data), copy()
    end.
