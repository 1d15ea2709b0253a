package Test::Nginx::Harness::Client;

# Part of the bundled Test::Nginx::Socket-compatible harness: builds the
# HTTP/1.x requests described by a test block, sends them over plain TCP
# (non-blocking, with a per-I/O-event timeout) and parses the responses.

use strict;
use warnings;
use IO::Socket::INET ();
use IO::Select ();
use POSIX qw(EAGAIN EWOULDBLOCK EINTR);
use Time::HiRes ();

# ------------------------------------------------------- request building --

# Parses "METHOD [URL [VERSION]]\nbody" (after leading blank/# lines).
# Returns a hash with the pieces and the offset where the body starts in
# the original string (used to map packet boundaries).
sub parse_request_spec {
    my ($spec) = @_;
    $spec = '' unless defined $spec;
    my $pos = 0;
    # skip leading blank lines and "# comment" lines
    while ($spec =~ /\G([ \t]*(?:#[^\n]*)?\n)/gc) {
        $pos = pos($spec);
    }
    my $nl = index($spec, "\n", $pos);
    my $first = $nl < 0 ? substr($spec, $pos) : substr($spec, $pos, $nl - $pos);
    my $body_start = $nl < 0 ? length($spec) : $nl + 1;
    $first =~ s/\r\z//;
    if ($first !~ /^\s*(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(\S+))?\s*$/) {
        die "request line is not valid (should be 'METHOD [URL [VERSION]]'): '$first'\n";
    }
    my ($meth, $url, $ver) = ($1, $2, $3);
    $url = '/' unless defined $url;
    $ver = 'HTTP/1.1' unless defined $ver;
    return {
        method     => $meth,
        url        => $url,
        http_ver   => $ver,
        content    => substr($spec, $body_start),
        line_start => $pos,
        body_start => $body_start,
    };
}

# Parses the more_headers text into "Key: value\r\n" lines.
sub format_more_headers {
    my ($text) = @_;
    return ('', 0, 0, 0, 0) unless defined $text && length $text;
    my ($out, $chunked, $has_len, $has_host, $has_conn) = ('', 0, 0, 0, 0);
    for my $h (split /\n+/, $text) {
        next if $h =~ /^\s*#/;
        next if $h !~ /\S/;
        $h =~ s/\r\z//;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v = '' unless defined $v;
        $chunked = 1 if lc($k) eq 'transfer-encoding' && $v =~ /^\s*chunked\s*$/i;
        $has_len = 1 if lc($k) eq 'content-length';
        $has_host = 1 if lc($k) eq 'host';
        $has_conn = 1 if $k =~ /^connection/i;
        $out .= "$k: $v\r\n";
    }
    return ($out, $chunked, $has_len, $has_host, $has_conn);
}

# Builds one request from a list of packets (strings).  Returns the list of
# transformed packet strings (same count) and the method.
sub build_request {
    my (%a) = @_;
    my @packets = @{ $a{packets} };
    my $spec = join '', @packets;
    my $p = parse_request_spec($spec);
    my ($mh, $chunked, $has_len, $has_host, $has_conn) =
        format_more_headers($a{more_headers});

    my $content = $p->{content};
    my $body_trim_lead = 0;
    my $len_header = '';
    if (!$chunked && length $content && !$has_len) {
        if ($content =~ /^(\s+)/) { $body_trim_lead = length $1 }
        $content =~ s/^\s+|\s+$//gs;
        $len_header = "Content-Length: " . length($content) . "\r\n";
    }
    my $host = $has_host ? '' : "Host: $a{server_name}\r\n";
    # like the genuine library: no Connection header of our own when the
    # block gives one
    my $conn = $has_conn ? '' : "Connection: $a{connection}\r\n";
    my $head = "$p->{method} $p->{url} $p->{http_ver}\r\n"
             . $host . $conn . $mh . $len_header . "\r\n";
    my $full = $head . $content;

    return ([$full], $p->{method}) if @packets <= 1;

    # map the original packet boundaries onto the generated request
    my @cuts;
    my $off = 0;
    for my $i (0 .. $#packets - 1) {
        $off += length $packets[$i];
        my $n;
        if ($off <= $p->{line_start}) {
            $n = 0;
        } elsif ($off < $p->{body_start}) {
            # inside the request line: keep the position within it
            $n = $off - $p->{line_start};
            $n = length($head) if $n > length($head);
        } else {
            $n = length($head) + ($off - $p->{body_start}) - $body_trim_lead;
            $n = length($head) if $n < length($head);
        }
        $n = length($full) if $n > length($full);
        push @cuts, $n;
    }
    my @out;
    my $prev = 0;
    for my $c (@cuts, length $full) {
        $c = $prev if $c < $prev;
        push @out, substr($full, $prev, $c - $prev);
        $prev = $c;
    }
    return (\@out, $p->{method});
}

# Returns a list of "connections" to make, in order.  Each is
#   { packets => [ { value => ..., delay_before => ... }, ... ],
#     methods => [ method per expected response ], raw => 0|1 }
# As in the genuine library, $TEST_NGINX_* variables are expanded in
# --- pipelined_requests only (by the "expand" callback, which dies on an
# undefined one), never in --- request, --- raw_request or --- more_headers.
sub requests_from_block {
    my (%a) = @_;
    my $block = $a{block};
    my $server_name = $a{server_name};
    my $expand = $a{expand} || sub { $_[0] };
    my @conns;

    my $raw = $block->get_value('raw_request');
    if (defined $raw) {
        my @pk = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        @pk = map { ref $_ eq 'HASH' ? { %$_ } : { value => $_ } } @pk;
        my $meth = ($pk[0]{value} // '') =~ /^\s*(\S+)/ ? $1 : 'GET';
        push @conns, { packets => \@pk, methods => [$meth], raw => 1 };
        return @conns;
    }

    my $more = $block->get_value('more_headers');
    my $more_for = sub {
        my ($i, $what) = @_;
        return $more unless ref $more eq 'ARRAY';
        die "--- more_headers has no value for the $what\n"
            unless defined $more->[$i];
        return $more->[$i];
    };

    my $pipe = $block->get_value('pipelined_requests');
    if (defined $pipe) {
        die "--- pipelined_requests must be an array reference (use 'eval')\n"
            unless ref $pipe eq 'ARRAY';
        my ($all, @methods) = ('');
        for my $i (0 .. $#$pipe) {
            my ($pk, $m) = build_request(
                packets => [ $expand->($pipe->[$i]) ],
                more_headers => $more_for->($i, "pipelined request $i"),
                server_name => $server_name,
                connection => ($i == $#$pipe ? 'close' : 'keep-alive'));
            # the genuine library frames a HEAD response like any other
            # (by its Content-Length), which swallows the next response
            die "a HEAD request in --- pipelined_requests must be the last "
                . "one (the genuine library would misread the responses "
                . "after it)\n" if $m eq 'HEAD' && $i != $#$pipe;
            $all .= join '', @$pk;
            push @methods, $m;
        }
        push @conns, { packets => [ { value => $all } ], methods => \@methods };
        return @conns;
    }

    my $req = $block->get_value('request');
    die "no --- request, --- raw_request or --- pipelined_requests section\n"
        unless defined $req;
    my @reqs = ref $req eq 'ARRAY' ? @$req : ($req);
    for my $i (0 .. $#reqs) {
        my $r = $reqs[$i];
        die "request $i must be a string or an array of packets\n"
            if ref $r && ref $r ne 'ARRAY';
        my @orig = ref $r eq 'ARRAY' ? @$r : ($r);
        for my $o (@orig) {
            die "a packet must be a string or a hash with a value\n"
                if ref $o && ref $o ne 'HASH';
        }
        my @strs = map { ref $_ eq 'HASH' ? $_->{value} : $_ } @orig;
        my ($pk, $m) = build_request(
            packets => \@strs,
            more_headers => $more_for->($i, "request $i"),
            server_name => $server_name, connection => 'close');
        my @packets;
        for my $j (0 .. $#$pk) {
            my %p = ref $orig[$j] eq 'HASH' ? %{ $orig[$j] } : ();
            $p{value} = $pk->[$j];
            push @packets, \%p;
        }
        push @conns, { packets => \@packets, methods => [$m] };
    }
    return @conns;
}

# ------------------------------------------------------------- transport --

# send_request(packets => [...], addr =>, port =>, timeout =>, middle_delay =>,
#              shutdown => undef|0|1|2)
# Returns { raw => $bytes, timed_out => bool, error => $msg|undef }.
sub send_request {
    my (%a) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $timeout = $a{timeout};
    my @packets = @{ $a{packets} };
    my $res = { raw => '', timed_out => 0, error => undef };

    my $sock = IO::Socket::INET->new(
        PeerAddr => $a{addr}, PeerPort => $a{port}, Proto => 'tcp',
        Timeout => $timeout,
    );
    if (!$sock) {
        $res->{error} = "cannot connect to $a{addr}:$a{port}: $!";
        return $res;
    }
    $sock->blocking(0);
    binmode $sock;

    my $sel = IO::Select->new($sock);
    my $wbuf;
    my $woff = 0;
    my $writing = 1;
    my $first = 1;

    my $next_packet = sub {
        my $p = shift @packets;
        return 0 unless $p;
        # as in the genuine library, the first packet goes out at once
        # (its delay_before is not honoured)
        my $delay = $first ? undef : $p->{delay_before};
        $delay = $a{middle_delay} if !defined $delay && !$first;
        Time::HiRes::sleep($delay) if $delay && $delay > 0;
        $first = 0;
        $wbuf = defined $p->{value} ? $p->{value} : '';
        $woff = 0;
        return 1;
    };
    $writing = $next_packet->();

    my $reading = 1;
    while ($reading) {
        my ($r, $w) = IO::Select->select($sel, ($writing ? $sel : undef), undef, $timeout);
        if (!defined $r && !defined $w) {
            next if $! == EINTR;
            $res->{timed_out} = 1;
            last;
        }
        if ($writing && $w && @$w) {
            while (1) {
                my $left = length($wbuf) - $woff;
                if ($left <= 0) {
                    if (!$next_packet->()) {
                        $writing = 0;
                        shutdown($sock, $a{shutdown}) if defined $a{shutdown};
                        last;
                    }
                    next;
                }
                my $n = syswrite($sock, $wbuf, $left, $woff);
                if (!defined $n) {
                    last if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                    $res->{error} = "write failed: $!";
                    $writing = 0;
                    last;
                }
                $woff += $n;
                last if $n < $left;
            }
        }
        if ($r && @$r) {
            while (1) {
                my $buf;
                my $n = sysread($sock, $buf, 65536);
                if (!defined $n) {
                    last if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                    $res->{error} ||= "read failed: $!";
                    $reading = 0;
                    last;
                }
                if ($n == 0) { $reading = 0; last }
                $res->{raw} .= $buf;
            }
        }
    }
    close $sock;
    return $res;
}

# -------------------------------------------------------- response parsing --

sub _decode_chunked {
    my ($data) = @_;   # returns (decoded, rest, error)
    my $out = '';
    my $pos = 0;
    while (1) {
        pos($data) = $pos;
        if ($data !~ /\G[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r?\n/gc) {
            return ($out, substr($data, $pos), "invalid or truncated chunked body (no chunk size line at offset $pos)");
        }
        my $size = hex $1;
        $pos = pos($data);
        if ($size == 0) {
            # trailers up to an empty line
            pos($data) = $pos;
            while ($data =~ /\G([^\r\n]*)\r?\n/gc) {
                $pos = pos($data);
                last if $1 eq '';
            }
            return ($out, substr($data, $pos), undef);
        }
        if (length($data) - $pos < $size) {
            $out .= substr($data, $pos);
            return ($out, '', "truncated chunked body (chunk of $size bytes incomplete)");
        }
        $out .= substr($data, $pos, $size);
        $pos += $size;
        pos($data) = $pos;
        if ($data !~ /\G\r?\n/gc) {
            return ($out, substr($data, $pos), "invalid chunked body (missing CRLF after chunk data)");
        }
        $pos = pos($data);
    }
}

# parse_responses($raw, \@methods) -> list of response hashes:
#   { code, status_line, raw_headers, headers => [[k, v], ...], body, error,
#     bad_framing (a broken chunked body), extra (bytes after the last
#     response of the connection) }
sub parse_responses {
    my ($raw, $methods) = @_;
    my @methods = @$methods;
    my @res;
    my $rest = $raw;
    for my $i (0 .. $#methods) {
        my $last = $i == $#methods;
        my $r = { code => undef, status_line => '', raw_headers => '',
                  headers => [], body => '', error => undef };
        push @res, $r;
        if ($rest eq '') {
            $r->{error} = 'no response received';
            next;
        }
        if ($rest !~ m{^HTTP/\d}) {
            # HTTP/0.9 style (or garbage): everything is body
            $r->{body} = $rest;
            $rest = '';
            next;
        }
        my $hend = index($rest, "\r\n\r\n");
        my $seplen = 4;
        my $alt = index($rest, "\n\n");
        if ($alt >= 0 && ($hend < 0 || $alt < $hend)) { $hend = $alt; $seplen = 2 }
        my ($head, $after);
        if ($hend < 0) {
            ($head, $after) = ($rest, '');
            $r->{error} = 'incomplete response header';
            $r->{raw_headers} = $head;
        } else {
            $head = substr($rest, 0, $hend);
            $after = substr($rest, $hend + $seplen);
            # raw headers keep the line end of the last header line
            $r->{raw_headers} = substr($rest, 0, $hend + $seplen / 2);
        }
        my @lines = split /\r?\n/, $head;
        my $sl = shift @lines;
        $r->{status_line} = $sl;
        $r->{code} = $1 if $sl =~ m{^HTTP/\S+\s+(\d+)};
        for my $l (@lines) {
            if ($l =~ /^[ \t]/ && @{ $r->{headers} }) {   # obsolete folding
                $l =~ s/^\s+//;
                $r->{headers}[-1][1] .= " $l";
                next;
            }
            my ($k, $v) = split /:/, $l, 2;
            next unless defined $k;
            $v = '' unless defined $v;
            $v =~ s/^\s+|\s+$//g;
            push @{ $r->{headers} }, [$k, $v];
        }
        my $code = $r->{code} // 0;
        my $meth = $methods[$i] // 'GET';
        my $te = header_value($r, 'Transfer-Encoding');
        my $cl = header_value($r, 'Content-Length');
        if ($meth eq 'HEAD' || $code == 204 || $code == 304 || ($code >= 100 && $code < 200)) {
            $r->{body} = '';
            $rest = $after;
        } elsif (defined $te && $te =~ /\bchunked\b/i) {
            my ($body, $left, $err) = _decode_chunked($after);
            $r->{body} = $body;
            # the genuine library fails the block on a broken chunked body
            $r->{bad_framing} = $err if $err;
            $rest = $left;
            $r->{extra} = $left if $last && length $left;
        } elsif (defined $cl && $cl =~ /^\s*(\d+)\s*$/) {
            # the body is Content-Length bytes, on the last response of a
            # connection too (as the genuine library reads it)
            $r->{body} = substr($after, 0, $1);
            $r->{error} = "truncated body (Content-Length $1, got " . length($after) . ")"
                if length($after) < $1;
            $rest = length($after) > $1 ? substr($after, $1) : '';
            $r->{extra} = $rest if $last && length $rest;
        } else {
            # last (or only) response on the connection: read-until-close
            $r->{body} = $after;
            $rest = '';
        }
        $rest = '' if $last;
    }
    return @res;
}

sub header_value {
    my ($r, $key) = @_;
    my @v = map { $_->[1] } grep { lc($_->[0]) eq lc($key) } @{ $r->{headers} };
    return undef unless @v;
    return join ', ', @v;
}

1;
