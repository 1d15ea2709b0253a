# Reference implementation of docs/audit.md, for t/jukictl*.t and
# t/jukictl/gen.pl: key derivation, the four record types (A2 audit, C2
# completion, S1 summary, K1 control), a synthetic trail, and a small RESP
# client (core Perl only).

package JukiRef;

use strict;
use warnings;

use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use IO::Socket::INET;

our @AUDIT = qw(id ts node writer seq kid agency kind cert operator purpose
                subject method uri decision prev mac);
our @DONE = qw(id phase ts node writer seq kid decision status bytes
               upstream_ms prev mac);
our @SUMMARY = qw(id phase ts node writer seq kid cause second recorded
                  suppressed prev mac);
our @CONTROL = qw(id phase ts node writer seq kid action scope agency
                  operator reason actor prev mac);
# decided by the gateway (bound by the audit record's mac) ...
our @GATEWAY_REASONS = qw(unverified_certificate unknown_agency bad_request
                          bad_purpose bad_operator purpose_not_permitted
                          resident_code_forbidden);
# ... and by Redis (confirmed by a completion record)
our @REDIS_DECISIONS = qw(allow deny:stopped deny:rate_limited);
our @REASONS = (@GATEWAY_REASONS, qw(stopped rate_limited));

my %REDIS_DECIDED = map { $_ => 1 } @REDIS_DECISIONS;

# the bound of an audit record's mac: the decision, or "redis"
sub bound {
    my ($decision) = @_;
    return $REDIS_DECIDED{$decision} ? 'redis' : $decision;
}

sub redis_decided { return $REDIS_DECIDED{ $_[0] } ? 1 : 0 }

sub ns { my ($v) = @_; return length($v) . ':' . $v . ',' }

sub key {
    my ($raw) = @_;
    return {
        raw   => $raw,
        kid   => substr(sha256_hex($raw), 0, 16),
        k_mac => hmac_sha256('juki-chain-v1', $raw),
        k_sub => hmac_sha256('juki-subject-v1', $raw),
    };
}

sub pseudonym {
    my ($key, $code) = @_;
    return '' if $code eq '';
    return hmac_sha256_hex($code, $key->{k_sub});
}

sub writer {
    my ($name, $key) = @_;
    return { name => $name, key => $key, seq => 0, prev => '' };
}

# fields: hash of the record's values except id writer seq kid prev mac
# (and phase; a completion's id is the audit id it completes); returns
# [name, value, ...] in contract order.  An audit record's mac binds
# bound(decision), or $f{bound} when given (to forge one in a test).
sub record {
    my ($w, $type, %f) = @_;
    my $seq = ++$w->{seq};
    my ($tag, @names) = $type eq 'audit' ? ('A2', @AUDIT)
                      : $type eq 'done' ? ('C2', @DONE)
                      : $type eq 'summary' ? ('S1', @SUMMARY)
                      : ('K1', @CONTROL);
    my $bound = delete $f{bound};
    $f{id} //= "$w->{name}-$seq";
    $f{phase} = $type if $type eq 'done' || $type eq 'summary';
    $f{phase} = 'control' if $type eq 'control';
    $f{writer} = $w->{name};
    $f{seq} = $seq;
    $f{kid} = $w->{key}{kid};
    $f{prev} = $w->{prev};
    my @covered = grep { $_ ne 'mac'
                         && !($type eq 'audit' && $_ eq 'decision') } @names;
    my $m = $tag . join '', map { ns($f{$_} // '') } @covered;
    $m .= ns($bound // bound($f{decision} // '')) if $type eq 'audit';
    $f{mac} = hmac_sha256_hex($m, $w->{key}{k_mac});
    $w->{prev} = $f{mac};
    return [ map { ($_, $f{$_} // '') } @names ];
}

sub field {
    my ($rec, $name) = @_;
    my @f = @{ $rec->{fields} };
    for (my $i = 0; $i < @f; $i += 2) {
        return $f[$i + 1] if $f[$i] eq $name;
    }
    return undef;
}

sub set_field {
    my ($rec, $name, $value) = @_;
    my $f = $rec->{fields};
    for (my $i = 0; $i < @$f; $i += 2) {
        if ($f->[$i] eq $name) { $f->[$i + 1] = $value; return }
    }
    die "no field $name";
}

# a synthetic trail (returned, or passed record by record to emit);
# entry ids are assigned as Redis does (per stream:
# ms-0, ms-1, ... within one millisecond), so records of one writer in
# different streams within one ms come out of a merge by id swapped.
# Every request Redis decided (allow, stopped, rate_limited) gets its
# completion, in the same stream, when its writer next writes; with
# summaries => 1 a summary record of suppressed refusals follows now and
# then an unknown-agency refusal.
sub trail {
    my (%o) = @_;
    my $n = $o{requests};
    my @writers = @{ $o{writers} };
    my @agencies = @{ $o{agencies} };     # [name, kind, [purposes]]
    my @codes = @{ $o{codes} };
    my $ms = $o{start_ms};
    my $step = $o{step_ms} // 1;
    my (%last, @recs, %todo);
    my $rand = $o{rand} // sub { int(rand($_[0])) };

    my $status = sub {
        return $_[0] eq 'allow' ? 200 : $_[0] eq 'deny:stopped' ? 503 : 429;
    };

    my $add = sub {
        my ($w, $agency, $type, %f) = @_;
        my $stream = 'juki:{' . ($agency eq '' ? '_' : $agency) . '}:audit';
        my $fields = record($w, $type, %f);
        my ($lms, $lsq) = @{ $last{$stream} // [-1, 0] };
        my $id = $ms > $lms ? "$ms-0" : "$lms-" . ($lsq + 1);
        $last{$stream} = [ split /-/, $id ];
        my $rec = { stream => $stream, id => $id, fields => $fields,
                    writer => $w->{name}, seq => $w->{seq}, type => $type,
                    key => $w->{key}, resident => $f{resident} };
        if ($o{emit}) { $o{emit}->($rec) } else { push @recs, $rec }
        $ms += $rand->(3) == 0 ? $step : 0;
    };

    for my $i (1 .. $n) {
        my $w = $writers[$rand->(scalar @writers)];
        if (my $t = shift @{ $todo{$w->{name}} // [] }) {
            my $allow = $t->{decision} eq 'allow';
            $add->($w, $t->{agency}, 'done', id => $t->{id}, ts => $ms,
                   node => 'gw-1', decision => $t->{decision},
                   status => $status->($t->{decision}), bytes => 100 + $i,
                   upstream_ms => $allow ? $rand->(50) : '');
        }
        my $ai = $rand->(scalar(@agencies) + 1);
        my ($agency, $kind, $purposes) = $ai < @agencies
            ? @{ $agencies[$ai] } : ('', '', ['pension.benefit']);
        my $purpose = $purposes->[$rand->(scalar @$purposes)];
        my $code = $codes[$rand->(scalar @codes)];
        my $r = $rand->(11);
        my $decision = $agency eq '' ? 'deny:unknown_agency'
                     : $r < 7 ? 'allow'
                     : 'deny:' . (qw(stopped rate_limited
                                     purpose_not_permitted
                                     bad_request))[$r - 7];
        my $id = "$w->{name}-" . ($w->{seq} + 1);
        $add->($w, $agency, 'audit', ts => $ms, node => 'gw-1',
               agency => $agency, kind => $kind,
               cert => sha256_hex("cert-$agency"), operator => "op$i",
               purpose => $purpose,
               subject => pseudonym($w->{key}, $code), method => 'GET',
               uri => '/v1/residents/', decision => $decision,
               resident => $code);
        push @{ $todo{$w->{name}} }, { agency => $agency, id => $id,
                                       decision => $decision }
            if redis_decided($decision);
        if ($o{summaries} && $agency eq '' && $rand->(2) == 0) {
            $add->($w, '', 'summary', ts => $ms, node => 'gw-1',
                   cause => 'unknown_agency', second => int($ms / 1000),
                   recorded => 1, suppressed => 1 + $rand->(5));
        }
    }

    # the completions still owed
    for my $w (@writers) {
        while (my $t = shift @{ $todo{$w->{name}} // [] }) {
            $add->($w, $t->{agency}, 'done', id => $t->{id}, ts => $ms,
                   node => 'gw-1', decision => $t->{decision},
                   status => $status->($t->{decision}), bytes => 1,
                   upstream_ms => '');
        }
    }

    return \@recs;
}

sub xadd_args {
    my ($rec) = @_;
    return ('XADD', $rec->{stream}, $rec->{id}, @{ $rec->{fields} });
}

sub resp {
    my $o = '*' . scalar(@_) . "\r\n";
    $o .= '$' . length($_) . "\r\n$_\r\n" for @_;
    return $o;
}

# minimal RESP2 client

sub connect {
    my ($class, $host, $port, $db) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "cannot connect to Redis $host:$port: $!";
    binmode $s;
    my $self = bless { s => $s }, $class;
    $self->cmd('SELECT', $db) if $db;
    return $self;
}

sub cmd {
    my ($self, @a) = @_;
    print { $self->{s} } resp(@a);
    return $self->reply;
}

sub pipeline {
    my ($self, @cmds) = @_;
    my @r;
    while (my @chunk = splice @cmds, 0, 1000) {
        print { $self->{s} } join '', map { resp(@$_) } @chunk;
        push @r, $self->reply for @chunk;
    }
    return @r;
}

sub reply {
    my ($self) = @_;
    my $s = $self->{s};
    my $line = <$s>;
    die "Redis closed the connection" unless defined $line;
    $line =~ s/\r\n\z//;
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return $v if $t eq '+' || $t eq ':';
    die "Redis error: $v\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        my $buf = '';
        read($s, $buf, $v + 2, 0) == $v + 2 or die "short read";
        return substr($buf, 0, $v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { $self->reply } 1 .. $v ];
    }
    die "bad reply: $line";
}

sub load {
    my ($self, $recs) = @_;
    $self->pipeline(map { [ xadd_args($_) ] } @$recs);
}

1;
