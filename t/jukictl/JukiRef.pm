# Reference writer of A3 records (docs/audit.md, "Records"), for
# t/jukictl*.t and t/jukictl/gen.pl: key derivation, the five record types (W writer, A audit, C completion, S
# summary, K control) chained per writer with mac16, a synthetic trail,
# and a small RESP client (core Perl only).

package JukiRef;

use strict;
use warnings;

use Digest::SHA qw(sha256 sha256_hex hmac_sha256);
use IO::Socket::INET;

our %CODE = (
    'allow' => 1, 'deny:stopped' => 2, 'deny:rate_limited' => 3,
    'deny:unverified_certificate' => 16, 'deny:unknown_agency' => 17,
    'deny:bad_request' => 18, 'deny:bad_purpose' => 19,
    'deny:bad_operator' => 20, 'deny:purpose_not_permitted' => 21,
    'deny:resident_code_forbidden' => 22,
);
our %KIND = ('' => 0, national => 1, prefecture => 2, municipality => 3,
             designated => 4, private => 5);

sub redis_decided { my $c = $CODE{ $_[0] } // die "bad decision $_[0]";
                    return $c <= 3 ? 1 : 0 }

sub varint {
    my ($v) = @_;
    my $o = '';
    do {
        my $b = $v & 0x7f;
        $v >>= 7;
        $o .= chr($v ? $b | 0x80 : $b);
    } while ($v);
    return $o;
}

sub str { return varint(length $_[0]) . $_[0] }

sub u48 { return substr(pack('Q>', $_[0]), 2) }

sub key {
    my ($raw) = @_;
    return {
        raw     => $raw,
        kid     => substr(sha256_hex($raw), 0, 16),
        kid_raw => substr(sha256($raw), 0, 8),
        k_mac   => hmac_sha256('juki-chain-v1', $raw),
        k_sub   => hmac_sha256('juki-subject-v1', $raw),
    };
}

# 16 raw bytes, '' for no code
sub pseudonym {
    my ($key, $code) = @_;
    return '' if $code eq '';
    return substr(hmac_sha256($code, $key->{k_sub}), 0, 16);
}

sub mac16 {
    my ($key, $agency, $prev, $body) = @_;
    return substr(hmac_sha256('juki-v3' . str($agency) . $prev . $body,
                              $key->{k_mac}), 0, 16);
}

sub list_of { return 'juki:{' . ($_[0] eq '' ? '_' : $_[0]) . '}:audit' }

# a writer: NAME is 16 hex digits
sub writer {
    my ($name, $key) = @_;
    return { name => $name, raw => pack('H16', $name), key => $key,
             seq => -1, prev => "\0" x 16 };
}

# builds the writer's next record; returns { list, el, type, writer, seq,
# ... }.  %f: the record's fields by name (see the contract); for A,
# decision is a name ('allow', 'deny:...'); {agency} picks the list.
sub record {
    my ($w, $type, %f) = @_;
    my $seq = ++$w->{seq};
    my $agency = $type eq 'W' ? '' : $f{agency} // '';
    my $ts = $f{ts} // die 'ts';
    my $body = $type . $w->{raw};
    $body .= $type eq 'W' ? u48($ts) : varint($seq) . u48($ts);
    my $dec;
    if ($type eq 'W') {
        $body .= $w->{key}{kid_raw} . str($f{node} // 'gw-1')
               . chr($f{role} // 1);
    } elsif ($type eq 'A') {
        $dec = $CODE{ $f{decision} } // die "decision $f{decision}";
        my $g = $f{gdecision} // ($dec >= 16 ? $dec : 0);
        $body .= chr($KIND{ $f{kind} // '' }) . str($f{cert} // '')
               . str($f{subject} // '') . str($f{operator} // '')
               . str($f{purpose} // '') . str($f{method} // 'GET')
               . str($f{uri} // '') . chr($g);
    } elsif ($type eq 'C') {
        $body .= pack('H16', $f{awriter} // $w->{name}) . varint($f{aseq})
               . chr($CODE{ $f{decision} }) . varint($f{status} // 200)
               . varint($f{bytes} // 0) . varint($f{upstream} // 0);
    } elsif ($type eq 'S') {
        $body .= chr($f{cause}) . varint($f{second}) . varint($f{recorded})
               . varint($f{suppressed});
    } elsif ($type eq 'K') {
        $body .= chr($f{action}) . chr($f{scope}) . str($f{operator} // '')
               . str($f{reason} // '') . str($f{actor} // '');
    } else {
        die "type $type";
    }
    my $mac = mac16($w->{key}, $agency eq '' ? '_' : $agency, $w->{prev},
                    $body);
    $w->{prev} = $mac;
    my $el = $body . $mac;
    $el .= chr($f{final} // $dec) if $type eq 'A';
    return { %f, list => list_of($agency), el => $el, type => $type,
             writer => $w->{name}, seq => $seq, key => $w->{key},
             agency => $agency };
}

# a synthetic trail: a W per writer, then N requests; every request Redis
# decided (allow, stopped, rate_limited) gets its C record, in the same
# list, when its writer next writes; with summaries => 1 an S record
# follows now and then an unknown-agency refusal.  Records are returned
# in list order (or passed one by one to emit).
sub trail {
    my (%o) = @_;
    my @writers = @{ $o{writers} };
    my @agencies = @{ $o{agencies} };     # [name, kind, [purposes]]
    my @codes = @{ $o{codes} };
    my $ms = $o{start_ms};
    my (@recs, %todo);
    my $rand = $o{rand} // sub { int(rand($_[0])) };
    my $add = sub {
        my $rec = record(@_);
        if ($o{emit}) { $o{emit}->($rec) } else { push @recs, $rec }
        $ms += $rand->(3) == 0 ? 1 : 0;
    };
    my $status = sub {
        return $_[0] eq 'allow' ? 200 : $_[0] eq 'deny:stopped' ? 503 : 429;
    };

    for my $w (@writers) {
        $add->($w, 'W', ts => $ms) if $w->{seq} < 0;
    }

    for my $i (1 .. $o{requests}) {
        my $w = $writers[$rand->(scalar @writers)];
        if (my $t = shift @{ $todo{$w->{name}} // [] }) {
            $add->($w, 'C', agency => $t->{agency}, ts => $ms,
                   aseq => $t->{seq}, decision => $t->{decision},
                   status => $status->($t->{decision}), bytes => 100 + $i,
                   upstream => $t->{decision} eq 'allow'
                               ? 1 + $rand->(50) : 0);
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
        $add->($w, 'A', agency => $agency, ts => $ms, kind => $kind,
               cert => substr(sha256("cert-$agency"), 0, 16),
               operator => "op$i", purpose => $purpose,
               subject => pseudonym($w->{key}, $code), method => 'GET',
               uri => '/v1/residents/', decision => $decision,
               resident => $code);
        push @{ $todo{$w->{name}} }, { agency => $agency, seq => $w->{seq},
                                       decision => $decision }
            if redis_decided($decision);
        if ($o{summaries} && $agency eq '' && $rand->(2) == 0) {
            $add->($w, 'S', ts => $ms, cause => 17,
                   second => int($ms / 1000), recorded => 1,
                   suppressed => 1 + $rand->(5));
        }
    }

    # the completions still owed, unless the test wants some missing
    unless ($o{owe}) {
        for my $w (@writers) {
            while (my $t = shift @{ $todo{$w->{name}} // [] }) {
                $add->($w, 'C', agency => $t->{agency}, ts => $ms,
                       aseq => $t->{seq}, decision => $t->{decision},
                       status => $status->($t->{decision}), bytes => 1);
            }
        }
    }

    return \@recs;
}

# decodes one element (no checks beyond the layout): a hash of its
# fields, decision names for codes, action/scope names for K
my %NAME = reverse %CODE;
sub decode {
    my ($el) = @_;
    my $b = $el;
    my $u8 = sub { ord(substr($b, 0, 1, '')) };
    my $vi = sub {
        my ($v, $sh) = (0, 0);
        while (1) { my $c = $u8->(); $v |= ($c & 0x7f) << $sh;
                    last unless $c & 0x80; $sh += 7 }
        return $v;
    };
    my $st = sub { my $n = $vi->(); return substr($b, 0, $n, '') };
    my %r = (type => substr($b, 0, 1, ''),
             writer => unpack('H16', substr($b, 0, 8, '')));
    $r{seq} = $r{type} eq 'W' ? 0 : $vi->();
    $r{ts} = unpack('Q>', "\0\0" . substr($b, 0, 6, ''));
    if ($r{type} eq 'W') {
        $r{kid} = unpack('H16', substr($b, 0, 8, ''));
        $r{node} = $st->();
        $r{role} = $u8->();
    } elsif ($r{type} eq 'A') {
        $r{decision} = $NAME{ ord(substr($b, -1, 1, '')) };
        $r{kind} = $u8->();
        $r{$_} = $st->() for qw(cert subject operator purpose method uri);
        $r{gdecision} = $u8->();
    } elsif ($r{type} eq 'C') {
        $r{awriter} = unpack('H16', substr($b, 0, 8, ''));
        $r{aseq} = $vi->();
        $r{decision} = $NAME{ $u8->() };
        $r{$_} = $vi->() for qw(status bytes upstream);
    } elsif ($r{type} eq 'S') {
        $r{cause} = $u8->();
        $r{$_} = $vi->() for qw(second recorded suppressed);
    } elsif ($r{type} eq 'K') {
        $r{action} = (undef, 'stop', 'resume')[ $u8->() ];
        $r{scope} = (undef, 'global', 'agency', 'operator')[ $u8->() ];
        $r{$_} = $st->() for qw(operator reason actor);
    }
    $r{mac} = substr($b, 0, 16, '');
    $r{rest} = length $b;
    return \%r;
}

sub rpush_args { return ('RPUSH', $_[0]{list}, $_[0]{el}) }

sub resp {
    my $o = '*' . scalar(@_) . "\r\n";
    $o .= '$' . length($_) . "\r\n$_\r\n" for @_;
    return $o;
}

# The password of USER of the test Redis's ACL (TEST_NGINX_REDIS_SECRETS, set
# by scripts/test.sh), or undef when the test Redis has no ACL
sub secret {
    my $dir = $ENV{TEST_NGINX_REDIS_SECRETS} or return undef;
    open(my $fh, '<', "$dir/$_[0]") or die "no password of $_[0] in $dir: $!\n";
    my $pw = <$fh> // '';
    close $fh;
    chomp $pw;
    die "empty password of $_[0]\n" unless length $pw;
    return $pw;
}

# Sets JUKI_REDIS_USER and JUKI_REDIS_PASSWORD for a jukictl run of ARGS as
# the role its command has in production (conf/juki-users.acl.in): stop and
# resume as juki-control, function as juki-admin, archive as juki-archiver,
# every other as juki-reader; nothing when ARGS name their own credentials
sub role_env {
    my @args = @_;
    return if grep { /\A--(?:user|password|password-file)\z/ } @args;
    my $cmd = $args[0] // '';
    my $user = $cmd =~ /\A(?:stop|resume)\z/ ? 'juki-control'
             : $cmd eq 'function'             ? 'juki-admin'
             : $cmd eq 'archive'              ? 'juki-archiver'
             :                                  'juki-reader';
    my $pw = secret($user);
    return unless defined $pw;
    $ENV{JUKI_REDIS_USER} = $user;
    $ENV{JUKI_REDIS_PASSWORD} = $pw;
}

# minimal RESP2 client

sub connect {
    my ($class, $host, $port, $db) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "cannot connect to Redis $host:$port: $!";
    binmode $s;
    my $self = bless { s => $s }, $class;
    # the test Redis runs under the ACL (scripts/test.sh): the tests' own
    # connection is the admin's
    my $pw = secret('juki-admin');
    $self->cmd('AUTH', 'juki-admin', $pw) if defined $pw;
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
    $self->pipeline(map { [ rpush_args($_) ] } @$recs);
}

1;
