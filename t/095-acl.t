# The Redis ACL of conf/juki-users.acl.in, against the real test Redis
# (scripts/test.sh starts it with that file): the gateway's credential can
# call its function -- every command the function runs included -- and
# append, and cannot delete, trim, rename, expire, overwrite, reorder or
# flush anything of the trail; control, reader and archiver can each do what
# their role needs and no more; the default user is off.  No gateway needed.

use strict;
use warnings;
use lib 't/juki';
use Test::More;
use JukiTest;

my $AG = 'acl-test';
my $A  = "juki:{$AG}:audit";        # an agency's audit list
my $T  = "juki:{$AG}:trimmed";      # its archiver's counter
my $U  = 'juki:{_}:audit';          # the list of no agency
my $F  = 'juki_' . JukiTest::function_id() . '_batch';

my $admin = JukiTest::Conn->new(user => 'juki-admin');

sub is_ok    { !ref $_[0] || ref $_[0] eq 'ARRAY' }
sub show     { my $r = shift; ref $r eq 'JukiTest::Err' ? $r->msg
               : ref $r ? '[' . join(',', map { show($_) } @$r) . ']'
               : defined $r ? $r : '(nil)' }

# the trail as it is: every audit list and counter, element by element, and
# their TTLs and types
sub trail {
    my $t = '';
    for my $k ($A, $U, $T, "juki:{other}:audit") {
        my $type = $admin->cmd('TYPE', $k);
        $t .= "$k $type ttl=" . $admin->cmd('PTTL', $k) . "\n";
        $t .= join("\n", map { unpack 'H*', $_ }
                   @{$admin->cmd('LRANGE', $k, 0, -1)}) . "\n"
            if $type eq 'list';
        $t .= $admin->cmd('GET', $k) . "\n" if $type eq 'string';
    }
    return $t;
}

sub setup {
    $admin->cmd('FLUSHALL');
    $admin->cmd('RPUSH', $A, "W\x00record", "A\x01record", "C\x02record");
    $admin->cmd('RPUSH', $U, "W\x00one");
    $admin->cmd('RPUSH', 'juki:{other}:audit', "A\x00other");
    $admin->cmd('SET', $T, 7);
    $admin->cmd('HSET', "juki:{$AG}:rl", '_', 1);
    $admin->cmd('ZADD', "juki:{$AG}:seen", 1, 'x');
    $admin->cmd('SET', 'juki:stop', 'global stop');
}

my %USER = (gw => 'juki-gw', reader => 'juki-reader',
            control => 'juki-control', archiver => 'juki-archiver');

# refused(CONN, WHO, CMD...): the command is refused by the ACL, when run
# (NOPERM) and as ACL DRYRUN says; DEBUG, off in this Redis's configuration
# anyway, is refused before the ACL is asked, so for it DRYRUN alone tells
sub refused {
    my ($c, $who, @cmd) = @_;
    my $r = $c->cmd(@cmd);
    my $name = "$who: @cmd[0 .. ($#cmd < 3 ? $#cmd : 3)] refused";
    $name =~ s/[^\x20-\x7e]/?/g;
    my $dry = $admin->cmd('ACL', 'DRYRUN', $USER{$who}, @cmd);
    my $by_acl = !ref $dry && $dry =~ /no permissions/;
    ok(ref $r eq 'JukiTest::Err'
       && ($r->msg =~ /^NOPERM\b/
           || ($cmd[0] eq 'DEBUG' && $r->msg =~ /^ERR DEBUG command not allowed/
               && $by_acl)), $name)
        or diag 'reply: ', show($r);
    ok($by_acl, "$name (ACL DRYRUN)") or diag 'dryrun: ', show($dry);
}

sub allowed {
    my ($c, $who, @cmd) = @_;
    my $r = $c->cmd(@cmd);
    my $name = "$who: @cmd[0 .. ($#cmd < 3 ? $#cmd : 3)] allowed";
    $name =~ s/[^\x20-\x7e]/?/g;
    ok(is_ok($r), $name) or diag 'reply: ', show($r);
    return $r;
}

# ---- the default user is off
{
    my $anon = JukiTest::Conn->new;
    my $r = $anon->cmd('PING');
    ok(ref $r && $r->msg =~ /^NOAUTH/, 'no user: PING needs AUTH')
        or diag show($r);
    $r = $anon->cmd('AUTH', 'default', 'x');
    ok(ref $r && $r->msg =~ /WRONGPASS|disabled/,
       'the default user cannot log in') or diag show($r);
    $r = $anon->cmd('AUTH', 'juki-gw', 'not-the-password');
    ok(ref $r && $r->msg =~ /WRONGPASS/, 'a wrong password is refused')
        or diag show($r);
}

# ---- the gateway: what it must be able to do
setup();
my $before = trail();
my $gw = JukiTest::Conn->new(user => 'juki-gw');
allowed($gw, 'gw', 'PING');
allowed($gw, 'gw', 'SELECT', 0);
allowed($gw, 'gw', 'TIME');
allowed($gw, 'gw', 'HSET', 'juki:purposes', 'pension.benefit', 'statute');
allowed($gw, 'gw', 'PUBLISH', 'juki:alerts', '{}');
allowed($gw, 'gw', 'ROLE');
allowed($gw, 'gw', 'WAIT', 0, 0);
my $r = allowed($gw, 'gw', 'RPUSH', $A, "A\x03appended");
is($r, 4, 'gw: RPUSH appended at the tail');
is($admin->cmd('LINDEX', $A, -1), "A\x03appended", 'gw: the element is last');

# the function, with every command it can run: stop switches read, limits
# read and written, a denial counted, residents looked up, two anomaly rules
# fired (stop_agency and stop_operator: SET of stop keys, PUBLISH)
my @rules = ('denials,0,60000,stop_agency,0,agency',
             'distinct_subjects,0,60000,stop_operator,0,operator');
$admin->cmd('DEL', 'juki:stop');
$r = $gw->cmd('FCALL', $F, 2, $A, $U, 'test-node', join(';', @rules), '',
              'P', 2, "Wgw",
              'R', 1, "Abody1", 'Op-1', 'pension.benefit',
              '1000 5000 1000 5000', 'subj1',
              'D', 1, "Ddenied", 'Op-1',
              'R', 1, "Abody2", 'Op-2', 'pension.benefit',
              '1000 5000 1000 5000', 'subj2');
ok(ref $r eq 'ARRAY', "gw: FCALL $F with every command of the function")
    or diag show($r);
is(ref $r eq 'ARRAY' ? unpack('H*', $r->[0]) : '', '00010002',
   'gw: the call decided (allow, then stopped by the anomaly rule)');
is_deeply($admin->cmd('LRANGE', $U, -1, -1), ["Wgw"],
          'gw: the P group appended to juki:{_}:audit');
is_deeply($admin->cmd('LRANGE', $A, -3, -1),
          ["Abody1\x01", "Ddenied", "Abody2\x02"],
          'gw: the R groups appended with their decision bytes');
for my $k ("juki:{$AG}:stop", "juki:{$AG}:stop:op:op-1", "juki:{$AG}:rl",
           "juki:{$AG}:seen:op-1")
{
    is($admin->cmd('EXISTS', $k), 1, "gw: the function wrote $k");
}
ok(scalar(grep { /^juki:\{\Q$AG\E\}:denials:1:\d+$/ }
          @{$admin->cmd('KEYS', "juki:{$AG}:denials:*")}),
   'gw: the function counted the denial');
allowed($gw, 'gw', 'FCALL', $F, 1, $A, 'test-node', '', '',
        'R', 1, 'Abody3', 'op-3', 'p', '', '');

# ---- the gateway: nothing that removes, rewrites or reorders the trail
setup();
$before = trail();
my $tmp = "juki:{$AG}:rl";
my @forbidden = (
    ['XADD', $A, 'MAXLEN', 0, '*', 'f', 'v'],
    ['XADD', "juki:{$AG}:x", 'MAXLEN', 0, '*', 'f', 'v'],
    ['XTRIM', $A, 'MAXLEN', 0],
    ['XSETID', $A, '0-1'],
    ['LPUSH', $A, 'x'], ['LPUSHX', $A, 'x'], ['RPUSHX', $A, 'x'],
    ['LSET', $A, 0, 'x'], ['LREM', $A, 0, 'x'], ['LTRIM', $A, 1, 0],
    ['LPOP', $A], ['RPOP', $A], ['LMPOP', 1, $A, 'LEFT'],
    ['BLPOP', $A, '0.01'], ['BRPOP', $A, '0.01'],
    ['LMOVE', $A, $A, 'LEFT', 'RIGHT'], ['LMOVE', $A, $U, 'RIGHT', 'LEFT'],
    ['BLMOVE', $A, $A, 'LEFT', 'RIGHT', '0.01'], ['RPOPLPUSH', $A, $A],
    ['LINSERT', $A, 'BEFORE', "W\x00record", 'x'],
    ['DEL', $A], ['UNLINK', $A], ['DEL', $T], ['DEL', $tmp],
    ['RENAME', $A, 'juki:{acl-test}:old'], ['RENAMENX', $A, 'x'],
    ['RENAME', $tmp, $A], ['MOVE', $A, 1],
    ['EXPIRE', $A, 1], ['PEXPIRE', $A, 1], ['EXPIREAT', $A, 1],
    ['PEXPIREAT', $A, 1], ['PERSIST', $A], ['PEXPIRE', $T, 1],
    ['SET', $A, 'x'], ['SET', $T, 0], ['SET', $A, 'x', 'PX', 1],
    ['GETDEL', $T], ['GETSET', $T, 0], ['GETEX', $T, 'PX', 1],
    ['INCRBY', $T, -7], ['DECR', $T], ['APPEND', $T, 0], ['SETRANGE', $T, 0, 0],
    ['HSET', $A, 'f', 'v'], ['ZADD', $A, 1, 'x'], ['SADD', $A, 'x'],
    ['COPY', $tmp, $A, 'REPLACE'], ['COPY', $A, 'juki:{acl-test}:copy'],
    ['RESTORE', $A, 0, 'x', 'REPLACE'], ['DUMP', $A],
    ['SORT', "juki:{$AG}:seen", 'STORE', $A], ['SORT', $A],
    ['SUNIONSTORE', $A, $tmp], ['ZUNIONSTORE', $A, 1, "juki:{$AG}:seen"],
    ['FLUSHALL'], ['FLUSHDB'], ['SWAPDB', 0, 1],
    ['FUNCTION', 'LOAD', 'REPLACE',
     "#!lua name=juki_evil\nredis.register_function('e', function() end)"],
    ['FUNCTION', 'DELETE', 'juki_' . JukiTest::function_id()],
    ['FUNCTION', 'FLUSH'], ['FUNCTION', 'RESTORE', 'x'], ['FUNCTION', 'DUMP'],
    ['FCALL_RO', $F, 1, $A],
    ['EVAL', "return redis.call('DEL', KEYS[1])", 1, $A],
    ['EVALSHA', '0' x 40, 1, $A], ['EVAL_RO', 'return 1', 0],
    ['SCRIPT', 'LOAD', 'return 1'], ['SCRIPT', 'FLUSH'],
    ['CONFIG', 'SET', 'appendonly', 'no'], ['CONFIG', 'GET', '*'],
    ['DEBUG', 'SLEEP', 0], ['MIGRATE', '127.0.0.1', 1, $A, 0, 1000],
    ['ACL', 'SETUSER', 'juki-gw', '+@all'], ['ACL', 'LIST'], ['ACL', 'WHOAMI'],
    ['SHUTDOWN', 'NOSAVE'], ['OBJECT', 'ENCODING', $A],
    ['BGREWRITEAOF'], ['REPLICAOF', '127.0.0.1', 1], ['MONITOR'],
    ['CLIENT', 'KILL', 'TYPE', 'normal'], ['KEYS', '*'], ['SCAN', 0],
    ['LRANGE', $A, 0, -1], ['GET', $T],
    ['PUBLISH', 'another-channel', 'x'], ['SUBSCRIBE', 'juki:alerts'],
    # the root key patterns never meet an audit list or a counter
    ['EXISTS', $A], ['MGET', $A], ['MGET', 'juki:stop', $A], ['GET', $A],
    ['HMGET', $A, 'f'], ['INCR', $T],
    ['ZADD', $T, 1, 'x'], ['ZREMRANGEBYSCORE', $A, '-inf', '+inf'],
    ['RPUSH', $T, 'x'], ['SET', 'juki:{_}:audit', 'x'],
    # nor does the gateway touch what is not the gateway's
    ['SET', 'unrelated', 'x'], ['RPUSH', 'juki:{a}:other', 'x'],
    ['PEXPIRE', 'juki:stop', 1], ['PEXPIRE', "juki:{$AG}:stop", 1],
);
refused($gw, 'gw', @$_) for @forbidden;
is(trail(), $before, 'gw: the trail is exactly as it was');
is($admin->cmd('DBSIZE'), 7, 'gw: no key was added or removed');

# a function is checked against its caller's ACL: a hostile library (loaded
# by the admin) that deletes or trims what it is given cannot do it for the
# gateway
{
    my $lib = "#!lua name=juki_acltest_hostile\n"
        . "redis.register_function('del', function(k) "
        . "return redis.call('DEL', k[1]) end)\n"
        . "redis.register_function('trim', function(k) "
        . "return redis.call('LTRIM', k[1], 1, 0) end)\n"
        . "redis.register_function('xadd', function(k) "
        . "return redis.call('XADD', k[1], 'MAXLEN', 0, '*', 'f', 'v') end)\n";
    my $l = $admin->cmd('FUNCTION', 'LOAD', 'REPLACE', $lib);
    is($l, 'juki_acltest_hostile', 'admin: FUNCTION LOAD (a hostile library)')
        or diag show($l);
    for my $f (qw(del trim xadd)) {
        my $x = $gw->cmd('FCALL', $f, 1, $A);
        ok(ref $x eq 'JukiTest::Err'
           && $x->msg =~ /can't run this command|NOPERM|No permissions/i,
           "gw: FCALL of a function that runs $f on an audit list is refused")
            or diag show($x);
    }
    $admin->cmd('FUNCTION', 'DELETE', 'juki_acltest_hostile');
    is(trail(), $before, 'gw: the trail is still as it was');
}

# ---- the reader: reads, writes nothing
setup();
$before = trail();
my $rd = JukiTest::Conn->new(user => 'juki-reader');
allowed($rd, 'reader', 'PING');
allowed($rd, 'reader', 'TIME');
allowed($rd, 'reader', 'LRANGE', $A, 0, -1);
allowed($rd, 'reader', 'LLEN', $A);
allowed($rd, 'reader', 'GET', $T);
allowed($rd, 'reader', 'TYPE', $A);
allowed($rd, 'reader', 'SCAN', 0, 'MATCH', 'juki:*:audit');
allowed($rd, 'reader', 'HGETALL', 'juki:purposes');
allowed($rd, 'reader', 'EXISTS', 'juki:stop');
allowed($rd, 'reader', 'INFO', 'server');
allowed($rd, 'reader', 'FUNCTION', 'LIST');
is($rd->cmd('MULTI'), 'OK', 'reader: MULTI');
$rd->cmd('TIME');
$rd->cmd('GET', $T);
$rd->cmd('LLEN', $A);
$r = $rd->cmd('EXEC');
ok(ref $r eq 'ARRAY' && @$r == 3 && $r->[2] == 3,
   'reader: the read cut (MULTI TIME GET LLEN EXEC)') or diag show($r);
refused($rd, 'reader', @$_) for (
    ['RPUSH', $A, 'x'], ['LTRIM', $A, 1, -1], ['INCRBY', $T, 1],
    ['DEL', $A], ['SET', 'juki:stop', 'x'], ['DEL', 'juki:stop'],
    ['SET', "juki:{$AG}:stop", 'x'], ['HSET', 'juki:purposes', 'a', 'b'],
    ['FCALL', $F, 1, $A], ['PUBLISH', 'juki:alerts', 'x'], ['FLUSHALL'],
    ['EXPIRE', $A, 1], ['FUNCTION', 'LOAD', 'x'], ['EVAL', 'return 1', 0],
    ['SET', 'unrelated', 'x'], ['GET', 'unrelated'], ['CONFIG', 'GET', '*'],
);
is(trail(), $before, 'reader: the trail is exactly as it was');

# ---- control: stop switches, and its own records appended
setup();
my $ct = JukiTest::Conn->new(user => 'juki-control');
for my $k ('juki:stop', "juki:{$AG}:stop", "juki:{$AG}:stop:op:clerk-1") {
    allowed($ct, 'control', 'SET', $k, 'reason');
    allowed($ct, 'control', 'DEL', $k);
}
allowed($ct, 'control', 'RPUSH', $U, "W\x00control");
is($ct->cmd('MULTI'), 'OK', 'control: MULTI');
$ct->cmd('SET', "juki:{$AG}:stop", 'leak');
$ct->cmd('RPUSH', $A, "K\x00stop");
$r = $ct->cmd('EXEC');
ok(ref $r eq 'ARRAY' && $r->[0] eq 'OK' && $r->[1] == 4,
   'control: stop and its K record in one MULTI') or diag show($r);
allowed($ct, 'control', 'LRANGE', $A, 0, -1);
allowed($ct, 'control', 'GET', "juki:{$AG}:stop");
$before = trail();
refused($ct, 'control', @$_) for (
    ['LTRIM', $A, 1, -1], ['LPUSH', $A, 'x'], ['LSET', $A, 0, 'x'],
    ['DEL', $A], ['SET', $A, 'x'], ['EXPIRE', $A, 1], ['INCRBY', $T, 1],
    ['SET', $T, 0], ['FCALL', $F, 1, $A], ['HSET', "juki:{$AG}:rl", '_', 0],
    ['DEL', "juki:{$AG}:rl"], ['SET', 'unrelated', 'x'], ['FLUSHALL'],
    ['PUBLISH', 'juki:alerts', 'x'], ['FUNCTION', 'LOAD', 'x'],
);
is(trail(), $before, 'control: the trail is exactly as it was');

# ---- the archiver: LTRIM of the head with INCRBY of the counter
setup();
my $ar = JukiTest::Conn->new(user => 'juki-archiver');
allowed($ar, 'archiver', 'LRANGE', $A, 0, 1);
is($ar->cmd('MULTI'), 'OK', 'archiver: MULTI');
$ar->cmd('LTRIM', $A, 2, -1);
$ar->cmd('INCRBY', $T, 2);
$r = $ar->cmd('EXEC');
ok(ref $r eq 'ARRAY' && $r->[0] eq 'OK' && $r->[1] == 9,
   'archiver: LTRIM and INCRBY in one MULTI') or diag show($r);
is_deeply($admin->cmd('LRANGE', $A, 0, -1), ["C\x02record"],
          'archiver: the head is gone, the tail kept');
$before = trail();
refused($ar, 'archiver', @$_) for (
    ['RPUSH', $A, 'x'], ['LPUSH', $A, 'x'], ['LSET', $A, 0, 'x'],
    ['DEL', $A], ['SET', $T, 0], ['DEL', $T], ['RENAME', $A, 'x'],
    ['EXPIRE', $A, 1], ['SET', 'juki:stop', 'x'], ['FCALL', $F, 1, $A],
    ['INCRBY', $A, 1], ['LTRIM', $T, 0, 0], ['FLUSHALL'],
    ['FUNCTION', 'LOAD', 'x'],
);
is(trail(), $before, 'archiver: nothing else changed');

# ---- what was acknowledged survives a restart: the effects of an FCALL
# (propagated to the AOF as MULTI ... EXEC) and the archiver's MULTI are
# replayed, though the EXEC of a replayed block is checked against the
# default user in Redis 7.0 (redis/redis#14541): the default user keeps its
# permissions and stays off
{
    JukiTest::redis2_stop();
    system('rm', '-rf', JukiTest::redis2_dir());
    JukiTest::redis2_start();
    my $p2 = $ENV{TEST_NGINX_REDIS2_PORT};
    my $g2 = JukiTest::Conn->new(user => 'juki-gw', port => $p2);
    my $x = $g2->cmd('FCALL', $F, 1, $A, 'test-node', '', '',
                     'R', 1, "Arestart1", 'op', 'p', '1000 5000 1000 5000', '',
                     'R', 1, "Arestart2", 'op', 'p', '1000 5000 1000 5000', '');
    ok(ref $x eq 'ARRAY', 'restart: an FCALL that writes a limit and a list')
        or diag show($x);
    $g2->close;
    my $a2 = JukiTest::Conn->new(user => 'juki-admin', port => $p2);
    $a2->cmd('RPUSH', $U, 'Wone');
    $a2->close;
    my $ar2 = JukiTest::Conn->new(user => 'juki-archiver', port => $p2);
    $ar2->cmd('MULTI');
    $ar2->cmd('LTRIM', $A, 1, -1);
    $ar2->cmd('INCRBY', $T, 1);
    $x = $ar2->cmd('EXEC');
    ok(ref $x eq 'ARRAY', 'restart: the archiver\'s MULTI') or diag show($x);
    $ar2->close;
    JukiTest::redis2_stop();
    JukiTest::redis2_start();
    $a2 = JukiTest::Conn->new(user => 'juki-admin', port => $p2);
    is_deeply($a2->cmd('LRANGE', $A, 0, -1), ["Arestart2\x01"],
              'restart: the FCALL\'s records and the trim are replayed');
    is($a2->cmd('GET', $T), 1, 'restart: and the trimmed counter');
    is($a2->cmd('HEXISTS', "juki:{$AG}:rl", '_'), 1,
       'restart: and the rate-limit state');
    is_deeply($a2->cmd('LRANGE', $U, 0, -1), ['Wone'],
              'restart: a plain RPUSH too');
    $a2->close;
    my $anon = JukiTest::Conn->new(port => $p2);
    my $r2 = $anon->cmd('GET', $A);
    ok(ref $r2 && $r2->msg =~ /^NOAUTH/,
       'restart: and the default user still lets nobody in')
        or diag show($r2);
    JukiTest::redis2_stop();
}

# ---- the admin: the operators' and the harness's user
is($admin->cmd('FUNCTION', 'LOAD', JukiTest::function_text())->msg,
   "ERR Library 'juki_" . JukiTest::function_id() . "' already exists",
   'admin: FUNCTION LOAD (the library is loaded already, by redis.sh)');

$admin->cmd('FLUSHALL');
done_testing();
