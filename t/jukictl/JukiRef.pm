# Reference implementation of docs/audit.md, for t/jukictl.t and
# t/jukictl/gen.pl: key derivation, the three record types, a synthetic
# trail, and a small RESP client (core Perl only).

package JukiRef;

use strict;
use warnings;

use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use IO::Socket::INET;

our @AUDIT = qw(id ts node writer seq kid agency kind cert operator purpose
                subject method uri decision prev mac dmac);
our @DONE = qw(id phase ts node writer seq kid status bytes upstream_ms prev
               mac);
our @CONTROL = qw(id phase ts node writer seq kid action scope agency
                  operator reason actor prev mac);
our @REASONS = qw(unverified_certificate unknown_agency bad_purpose
                  bad_operator purpose_not_permitted resident_code_forbidden
                  stopped rate_limited);

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
# dmac (and phase); returns [name, value, ...] in contract order
sub record {
    my ($w, $type, %f) = @_;
    my $seq = ++$w->{seq};
    my ($tag, @names) = $type eq 'audit' ? ('A1', @AUDIT)
                      : $type eq 'done' ? ('C1', @DONE)
                      : ('K1', @CONTROL);
    $f{id} //= "$w->{name}-$seq";
    $f{phase} = $type eq 'done' ? 'done' : 'control' if $type ne 'audit';
    $f{writer} = $w->{name};
    $f{seq} = $seq;
    $f{kid} = $w->{key}{kid};
    $f{prev} = $w->{prev};
    my $m = $tag . join '', map { ns($f{$_} // '') }
                            grep { !/^(decision|mac|dmac)$/ } @names;
    $f{mac} = hmac_sha256_hex($m, $w->{key}{k_mac});
    if ($type eq 'audit') {
        $f{dmac} = hmac_sha256_hex('D1' . ns($f{mac}) . ns($f{decision}),
                                   $w->{key}{k_mac});
    }
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
# different streams within one ms come out of a merge by id swapped
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
            $add->($w, $t->{agency}, 'done', id => $t->{id}, ts => $ms,
                   node => 'gw-1', status => 200, bytes => 100 + $i,
                   upstream_ms => $rand->(50));
        }
        my $ai = $rand->(scalar(@agencies) + 1);
        my ($agency, $kind, $purposes) = $ai < @agencies
            ? @{ $agencies[$ai] } : ('', '', ['pension.benefit']);
        my $purpose = $purposes->[$rand->(scalar @$purposes)];
        my $code = $codes[$rand->(scalar @codes)];
        my $r = $rand->(10);
        my $decision = $agency eq '' ? 'deny:unknown_agency'
                     : $r < 7 ? 'allow'
                     : 'deny:' . (qw(stopped rate_limited
                                     purpose_not_permitted))[$r - 7];
        my $id = "$w->{name}-" . ($w->{seq} + 1);
        $add->($w, $agency, 'audit', ts => $ms, node => 'gw-1',
               agency => $agency, kind => $kind,
               cert => sha256_hex("cert-$agency"), operator => "op$i",
               purpose => $purpose,
               subject => pseudonym($w->{key}, $code), method => 'GET',
               uri => '/v1/residents/', decision => $decision,
               resident => $code);
        push @{ $todo{$w->{name}} }, { agency => $agency, id => $id }
            if $decision eq 'allow';
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
